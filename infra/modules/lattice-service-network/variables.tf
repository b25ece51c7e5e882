variable "name" {
  description = "Service network name, e.g. outrigger-dev."
  type        = string
}

variable "organization_id" {
  description = "The AWS Organizations id; only its principals may use the service network."
  type        = string
}

variable "share_principals" {
  description = "Who the service network is shared with through AWS RAM: the organization's ARN, OU ARNs or member account ids."
  type        = list(string)
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
