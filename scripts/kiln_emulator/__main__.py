"""`python -m kiln_emulator serve|env`: see cli.py."""

from .cli import main

if __name__ == "__main__":
    main()
