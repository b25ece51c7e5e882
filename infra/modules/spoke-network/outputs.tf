output "vpc_id" {
  description = "The spoke VPC's id."
  value       = module.vpc.vpc_id
}

output "vpc_cidr_block" {
  description = "The spoke VPC's CIDR."
  value       = module.vpc.vpc_cidr_block
}

output "private_subnet_ids" {
  description = "Private subnet ids, one per AZ."
  value       = module.vpc.private_subnet_ids
}

output "isolated_subnet_ids" {
  description = "Isolated subnet ids, one per AZ."
  value       = module.vpc.isolated_subnet_ids
}

output "private_route_table_ids" {
  description = "Private route table ids keyed by AZ."
  value       = module.vpc.private_route_table_ids
}

output "transit_gateway_attachment_id" {
  description = "This VPC's transit gateway attachment."
  value       = aws_ec2_transit_gateway_vpc_attachment.this.id
}
