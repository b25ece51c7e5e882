output "vpc_id" {
  description = "The VPC's id."
  value       = aws_vpc.this.id
}

output "vpc_cidr_block" {
  description = "The VPC's IPv4 CIDR."
  value       = aws_vpc.this.cidr_block
}

output "public_subnet_ids" {
  description = "Public subnet ids, one per AZ (empty in spoke VPCs)."
  value       = [for az in var.availability_zones : aws_subnet.public[az].id if var.public_subnets]
}

output "private_subnet_ids" {
  description = "Private subnet ids, one per AZ, in the order of availability_zones."
  value       = [for az in var.availability_zones : aws_subnet.private[az].id]
}

output "isolated_subnet_ids" {
  description = "Isolated subnet ids, one per AZ."
  value       = [for az in var.availability_zones : aws_subnet.isolated[az].id]
}

output "private_route_table_ids" {
  description = "One private route table id per AZ, keyed by AZ."
  value       = { for az, rt in aws_route_table.private : az => rt.id }
}

output "public_route_table_id" {
  description = "The public route table's id, or null in spoke VPCs."
  value       = var.public_subnets ? aws_route_table.public[0].id : null
}

output "isolated_route_table_id" {
  description = "The isolated subnets' route table id."
  value       = aws_route_table.isolated.id
}

output "nat_gateway_ids" {
  description = "NAT gateway ids keyed by AZ (empty in spoke VPCs)."
  value       = { for az, n in aws_nat_gateway.this : az => n.id }
}

output "flow_log_id" {
  description = "The VPC flow log's id."
  value       = aws_flow_log.this.id
}

output "gateway_endpoint_ids" {
  description = "Gateway endpoint ids keyed by service (s3, dynamodb)."
  value       = { for s, e in aws_vpc_endpoint.gateway : s => e.id }
}
