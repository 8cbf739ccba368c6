variable "owner_account" {
  type    = string
  default = "123456789012"
}

variable "vpc_subnet" {
  type = string
}

data "amazon-ami" "base" {
  filters = {
    name                = "acme-base-ubuntu-24.04-*"
    root-device-type    = "ebs"
    virtualization-type = "hvm"
  }
  owners      = [var.owner_account]
  most_recent = true
  region      = "eu-central-1"
}

source "amazon-ebs" "app" {
  source_ami           = data.amazon-ami.base.id
  instance_type        = "t3.medium"
  region               = "eu-central-1"
  subnet_id            = "subnet-0a1b2c3d4e5f67890"
  security_group_id    = "sg-0123456789abcdef0"
  iam_instance_profile = "packer-builder"
  user_data_file       = "files/user-data.yml"
  ssh_username         = "ubuntu"
  ami_name             = "acme-app-{{timestamp}}"
  deprecate_at         = "2027-06-01T00:00:00Z"
}

build {
  sources = ["source.amazon-ebs.app"]

  provisioner "file" {
    source      = "files/app.conf"
    destination = "/tmp/app.conf"
  }

  provisioner "ansible" {
    playbook_file = "./playbook.yml"
    user          = "ubuntu"
  }

  provisioner "shell" {
    inline = ["sudo mv /tmp/app.conf /etc/app.conf", "sudo systemctl enable app"]
  }
}
