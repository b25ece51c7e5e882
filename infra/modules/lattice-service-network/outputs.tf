output "service_network_arn" {
  description = "The service network's ARN (member accounts use the ARN, not the id, since it is shared)."
  value       = aws_vpclattice_service_network.this.arn
}

output "service_network_id" {
  description = "The service network's id."
  value       = aws_vpclattice_service_network.this.id
}
