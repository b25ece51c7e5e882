variable "name" {
  description = "Name prefix, e.g. outrigger-prod."
  type        = string
}

variable "organization" {
  description = "The O= of both CA subjects."
  type        = string
  default     = "Outrigger"
}

variable "root_common_name" {
  description = "CN of the root CA."
  type        = string
}

variable "subordinate_common_name" {
  description = "CN of the subordinate (issuing) CA."
  type        = string
}

variable "root_validity_years" {
  description = "Lifetime of the root CA certificate."
  type        = number
  default     = 10
}

variable "subordinate_validity_years" {
  description = "Lifetime of the subordinate CA certificate."
  type        = number
  default     = 5
}

variable "share_principals" {
  description = "Who may issue certificates from the subordinate CA, through AWS RAM: the organization's ARN, OU ARNs or account ids."
  type        = list(string)
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
