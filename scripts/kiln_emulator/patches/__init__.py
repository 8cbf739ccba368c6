"""Where moto differs from AWS in what kiln does, a patch makes it behave as
AWS documents: one module each, its docstring telling what moto does, what
AWS does (with the page of AWS's documentation that says so) and what the
patch changes.

The modules import moto, and moto reads MOTO_AMIS_PATH as it is imported:
apply_all imports them, so call it once the seed file is named (cli.serve).
"""


def apply_all():
    """Applies every patch, in this order, before moto serves."""
    from . import (
        alarm_history,
        allowed_images,
        assume_role,
        command_output,
        copy_image,
        ena,
        image_lifecycle,
        image_parameters,
        image_snapshot_tags,
        imds_support,
        inspector_findings,
        instance_pages,
        instance_refresh,
        launch_template_versions,
        regions,
        run_instances,
        scan_sbom,
        sharing,
        start_execution,
        start_time,
    )

    for patch in (
        ena,
        start_time,
        assume_role,
        instance_pages,
        launch_template_versions,
        instance_refresh,
        start_execution,
        image_snapshot_tags,
        imds_support,
        run_instances,
        image_parameters,
        alarm_history,
        regions,
        copy_image,
        sharing,
        image_lifecycle,
        allowed_images,
        command_output,
        scan_sbom,
        inspector_findings,
    ):
        patch.apply()
