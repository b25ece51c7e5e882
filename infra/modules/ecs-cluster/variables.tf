variable "name" {
  description = "Cluster name, e.g. outrigger-dev-orders."
  type        = string
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
