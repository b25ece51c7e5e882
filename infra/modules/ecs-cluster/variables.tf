variable "name" {
  description = "Cluster name, e.g. outrigger-dev-orders."
  type        = string
}

variable "fargate_spot_weight" {
  description = "Share of tasks placed on FARGATE_SPOT by default (0 in prod)."
  type        = number
  default     = 0
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
