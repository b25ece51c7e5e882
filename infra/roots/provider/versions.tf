terraform {
  required_version = ">= 1.10.0, < 2.0.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "6.66.0"
    }
  }

  # Partial configuration: bucket, region, key, encryption and locking come from
  # environments/<env>/backend.hcl and -backend-config=key=... (see infra/README.md and infra/bin/tf).
  backend "s3" {}
}
