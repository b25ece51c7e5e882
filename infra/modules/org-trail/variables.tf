variable "name" {
  description = "Name prefix, e.g. outrigger-prod."
  type        = string
}

variable "bucket_name" {
  description = "Globally unique name of the log archive bucket."
  type        = string
}

variable "config_delivery_accounts" {
  description = "Accounts whose AWS Config delivery channels may write under config/ in the bucket."
  type        = list(string)
  default     = []
}

variable "log_retention_days" {
  description = "Days before log objects expire (noncurrent versions expire 30 days after that)."
  type        = number
  default     = 400
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
