variable "consumer_account_ids" {
  description = "Accounts allowed to reach this service: the endpoint service's allowed principals, the Lattice auth policy, the sidecar's inbound allow-list."
  type        = list(string)
}

variable "accepted_endpoint_ids" {
  description = "Consumers' interface endpoint ids to accept (consumer output privatelink_endpoint_ids), keyed by consumer name. Empty on the first apply."
  type        = map(string)
  default     = {}
}

variable "serverless" {
  description = "The optional serverless variant (private API Gateway + Lambda + DynamoDB): null to leave it out."
  type = object({
    lambda_s3_bucket = string
    lambda_s3_key    = string
    allowed_vpce_ids = list(string)
  })
  default = null
}
