"""A launch template version's SourceVersion: moto's
CreateLaunchTemplateVersion ignores SourceVersion and makes the version of
the request's LaunchTemplateData alone. On AWS the new version starts as a
copy of the source version's data (a number, `$Latest` or `$Default`), and
the request's data overrides it, key by top-level key. The patch does that.

AWS documentation:
  * Amazon EC2 API Reference, CreateLaunchTemplateVersion (SourceVersion: "the
    new version inherits the launch parameters from the source version. If
    you specify additional launch parameters for the new version, they
    overwrite any corresponding launch parameters inherited from the source
    version"):
    https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CreateLaunchTemplateVersion.html
  * Amazon EC2 User Guide, Modify a launch template (manage launch template
    versions):
    https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/manage-launch-template-versions.html
"""

import copy

from moto.ec2.responses.launch_templates import LaunchTemplates


def apply():
    """Start a launch template version from SourceVersion."""
    create_version = LaunchTemplates.create_launch_template_version

    def from_source_version(self):
        source = self._get_param("SourceVersion")
        if source is not None:
            template_id = self._get_param("LaunchTemplateId")
            template = (
                self.ec2_backend.get_launch_template(template_id)
                if template_id
                else self.ec2_backend.get_launch_template_by_name(self._get_param("LaunchTemplateName"))
            )
            data = copy.deepcopy(template.get_version(source).data)
            self.params["LaunchTemplateData"] = {**data, **self._get_param("LaunchTemplateData", {})}
        return create_version(self)

    LaunchTemplates.create_launch_template_version = from_source_version
