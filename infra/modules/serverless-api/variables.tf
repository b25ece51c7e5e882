variable "name" {
  description = "Name prefix, e.g. outrigger-dev-inventory."
  type        = string
}

variable "lambda_s3_bucket" {
  description = "Bucket holding the function's deployment package (built by CI)."
  type        = string
}

variable "lambda_s3_key" {
  description = "Key of the deployment package in lambda_s3_bucket."
  type        = string
}

variable "lambda_runtime" {
  description = "Lambda runtime of the handler."
  type        = string
  default     = "python3.12"
}

variable "lambda_handler" {
  description = "Handler entry point."
  type        = string
  default     = "app.handler"
}

variable "allowed_vpce_ids" {
  description = "Consumers' execute-api interface endpoint ids: the private API answers only requests through these."
  type        = list(string)

  validation {
    condition     = length(var.allowed_vpce_ids) > 0
    error_message = "A private API needs at least one consumer endpoint."
  }
}

variable "consumer_account_ids" {
  description = "Accounts whose principals may invoke the API (SigV4, AWS_IAM authorization)."
  type        = list(string)
}

variable "manage_api_gateway_account" {
  description = "Set the region's API Gateway CloudWatch Logs role (an account-wide setting that stage access logs need). Turn off where another stack already manages it."
  type        = bool
  default     = true
}

variable "log_retention_days" {
  description = "Retention of the function's and the stage's log groups."
  type        = number
  default     = 30
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
