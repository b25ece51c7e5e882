variable "repositories" {
  description = "Repository names: outrigger (the sidecar) and the apps' images."
  type        = list(string)

  validation {
    condition     = contains(var.repositories, "outrigger")
    error_message = "The outrigger sidecar's repository must be among the repositories."
  }
}

variable "pull_account_ids" {
  description = "Member accounts whose ECS task execution roles may pull every image."
  type        = list(string)
}

variable "organization_id" {
  description = "The AWS Organizations id; pulls are also limited to principals of this organization."
  type        = string
}

variable "untagged_expiry_days" {
  description = "Days after which untagged images are removed."
  type        = number
  default     = 14
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
