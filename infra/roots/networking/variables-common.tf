# Variables every root has. Values: environments/<env>/common.tfvars and environments/<env>/networking.tfvars.

variable "environment" {
  description = "dev, staging or prod."
  type        = string

  validation {
    condition     = contains(["dev", "staging", "prod"], var.environment)
    error_message = "environment must be dev, staging or prod."
  }
}

variable "region" {
  description = "The AWS region of every account's resources."
  type        = string
  default     = "us-east-1"
}

variable "organization_id" {
  description = "The AWS Organizations id (o-...)."
  type        = string
}

variable "deploy_role_name" {
  description = "Role that Terraform assumes in each account (created by the account vending process)."
  type        = string
  default     = "OutriggerTerraform"
}

variable "tags" {
  description = "Extra tags for every resource (default_tags adds Project, Environment, AccountRole, ManagedBy)."
  type        = map(string)
  default     = {}
}

variable "accounts" {
  description = "Account ids of the environment's fixed account roles."
  type = object({
    networking      = string
    security        = string
    shared_services = string
  })

  validation {
    condition     = alltrue([for id in values(var.accounts) : can(regex("^[0-9]{12}$", id))])
    error_message = "Account ids are 12 digits."
  }
}
