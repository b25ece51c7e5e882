variable "name" {
  description = "Name prefix, e.g. outrigger-dev-hub."
  type        = string
}

variable "vpc_id" {
  description = "The hub VPC that holds the endpoints."
  type        = string
}

variable "subnet_ids" {
  description = "One subnet per AZ for the endpoint network interfaces."
  type        = list(string)
}

variable "allowed_cidr_blocks" {
  description = "Who may reach the endpoints on 443: the hub VPC and the spokes' supernet."
  type        = list(string)
}

variable "services" {
  description = "Interface endpoint services shared with every spoke."
  type        = list(string)
  default     = ["ecr.api", "ecr.dkr", "logs", "sts", "secretsmanager"]
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
