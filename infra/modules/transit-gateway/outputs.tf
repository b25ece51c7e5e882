output "transit_gateway_id" {
  description = "The transit gateway's id, for the spokes' attachments."
  value       = aws_ec2_transit_gateway.this.id
}

output "transit_gateway_arn" {
  description = "The transit gateway's ARN."
  value       = aws_ec2_transit_gateway.this.arn
}

output "route_table_id" {
  description = "The transit gateway route table that spokes associate with and propagate into."
  value       = aws_ec2_transit_gateway_route_table.main.id
}

output "resource_share_arn" {
  description = "The RAM share that carries the transit gateway to the member accounts."
  value       = aws_ram_resource_share.tgw.arn
}
