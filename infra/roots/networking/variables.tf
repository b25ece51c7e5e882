variable "member_account_ids" {
  description = "Provider and consumer accounts that get the transit gateway and the Lattice service network through AWS RAM."
  type        = list(string)
}

variable "hub_cidr_block" {
  description = "The hub VPC's /16."
  type        = string
  default     = "10.0.0.0/16"
}

variable "spoke_supernet" {
  description = "CIDR covering every spoke VPC of the environment."
  type        = string
  default     = "10.0.0.0/8"
}
