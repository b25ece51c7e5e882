output "privatelink_endpoint_ids" {
  description = "Interface endpoint ids keyed by service: give these to the provider root (accepted_endpoint_ids)."
  value       = { for s, e in aws_vpc_endpoint.privatelink : s => e.id }
}

output "privatelink_hosts" {
  description = "Friendly host and port of each PrivateLink service, keyed by service: the sidecar's privatelink cluster endpoints."
  value = {
    for s, cfg in var.privatelink_services : s => {
      host = aws_route53_record.privatelink[s].fqdn
      port = cfg.port
    }
  }
}

output "lattice_hosts" {
  description = "Custom domain and Lattice service ARN of each Lattice service, keyed by service: the sidecar's lattice clusters."
  value = {
    for s, cfg in var.lattice_services : s => {
      host        = cfg.custom_domain_name
      port        = 443
      service_arn = cfg.service_arn
    }
  }
}

output "execute_api_endpoint_id" {
  description = "The execute-api interface endpoint id, or null: give it to the provider root for the private API's policy."
  value       = var.enable_execute_api_endpoint ? aws_vpc_endpoint.execute_api[0].id : null
}

output "private_zone_id" {
  description = "The friendly-names private hosted zone."
  value       = aws_route53_zone.friendly.zone_id
}
