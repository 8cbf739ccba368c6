packer {
  required_plugins {
    amazon = {
      version = ">= 1.2.8"
      source  = "github.com/hashicorp/amazon"
    }
  }
}

variable "region" {
  type    = string
  default = "us-east-1"
}

variable "docker_version" {
  type    = string
  default = "27.3.1"
}

variable "team" {
  type    = string
  default = "platform"
}

locals {
  timestamp = regex_replace(timestamp(), "[- TZ:]", "")
  name      = "${var.team}-ubuntu-jammy"
}

source "amazon-ebs" "ubuntu" {
  ami_name      = "${local.name}-${local.timestamp}"
  instance_type = "m6i.large"
  region        = var.region

  source_ami_filter {
    filters = {
      name                = "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-*"
      root-device-type    = "ebs"
      virtualization-type = "hvm"
    }
    most_recent = true
    owners      = ["099720109477"]
  }

  launch_block_device_mappings {
    device_name           = "/dev/sda1"
    volume_size           = 30
    volume_type           = "gp3"
    delete_on_termination = true
  }

  encrypt_boot = true
  ssh_username = "ubuntu"

  run_tags = {
    Name = "packer-builder"
  }

  tags = {
    Team       = var.team
    OS         = "ubuntu-22.04"
    Docker     = var.docker_version
    BuildStamp = local.timestamp
  }
}

build {
  name    = "ubuntu-docker"
  sources = ["source.amazon-ebs.ubuntu"]

  provisioner "shell" {
    inline = [
      "cloud-init status --wait",
      "sudo apt-get update",
    ]
  }

  provisioner "shell" {
    environment_vars = [
      "DEBIAN_FRONTEND=noninteractive",
      "DOCKER_VERSION=${var.docker_version}",
    ]
    execute_command = "chmod +x {{ .Path }}; sudo -E sh -c '{{ .Vars }} {{ .Path }}'"
    scripts = [
      "${path.root}/scripts/base.sh",
      "${path.root}/scripts/docker.sh",
    ]
    timeout = "20m"
  }

  provisioner "shell" {
    inline            = ["sudo reboot"]
    expect_disconnect = true
  }

  provisioner "shell" {
    pause_before = "30s"
    script       = "${path.root}/scripts/cleanup.sh"
  }

  post-processor "manifest" {
    output     = "manifest.json"
    strip_path = true
  }
}
