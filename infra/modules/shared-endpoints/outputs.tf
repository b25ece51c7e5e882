output "endpoint_ids" {
  description = "Interface endpoint ids keyed by service."
  value       = { for s, e in aws_vpc_endpoint.interface : s => e.id }
}

output "private_hosted_zone_ids" {
  description = "Private hosted zone ids keyed by service; spokes associate their VPCs with these."
  value       = { for s, z in aws_route53_zone.service : s => z.zone_id }
}

output "security_group_id" {
  description = "The endpoints' security group."
  value       = aws_security_group.endpoints.id
}
