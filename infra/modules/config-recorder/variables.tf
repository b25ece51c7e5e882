variable "name" {
  description = "Name prefix, e.g. outrigger-prod."
  type        = string
}

variable "s3_bucket_name" {
  description = "The log archive bucket that the delivery channel writes to (under config/)."
  type        = string
}

variable "s3_kms_key_arn" {
  description = "The log archive's KMS key."
  type        = string
}

variable "snapshot_frequency" {
  description = "How often AWS Config delivers a configuration snapshot."
  type        = string
  default     = "TwentyFour_Hours"
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
