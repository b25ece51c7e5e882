variable "log_archive_bucket_name" {
  description = "Globally unique name of the log archive bucket (CloudTrail and AWS Config)."
  type        = string
}

variable "config_delivery_account_ids" {
  description = "Accounts whose AWS Config delivery channels write to the log archive (this one at least)."
  type        = list(string)
  default     = []
}

variable "log_retention_days" {
  description = "Days the log archive keeps CloudTrail and Config objects."
  type        = number
  default     = 400
}
