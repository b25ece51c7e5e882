output "service_arn" {
  description = "The Lattice service's ARN (consumers' task roles are granted vpc-lattice-svcs:Invoke on it)."
  value       = aws_vpclattice_service.this.arn
}

output "service_dns_name" {
  description = "The Lattice-generated DNS name that the custom domain points at."
  value       = aws_vpclattice_service.this.dns_entry[0].domain_name
}

output "custom_domain_name" {
  description = "The name consumers call."
  value       = var.custom_domain_name
}

output "target_group_arn" {
  description = "The IP target group (15000) that ECS registers the sidecars in."
  value       = aws_vpclattice_target_group.sidecar.arn
}
