# Inputs of the member roots (provider, consumer): see infra/README.md, "What each root needs".

output "transit_gateway_id" {
  description = "-> provider/consumer: transit_gateway_id."
  value       = module.transit_gateway.transit_gateway_id
}

output "transit_gateway_route_table_id" {
  description = "-> provider/consumer: transit_gateway_route_table_id."
  value       = module.transit_gateway.route_table_id
}

output "shared_endpoint_zone_ids" {
  description = "-> provider/consumer: shared_endpoint_zone_ids."
  value       = module.shared_endpoints.private_hosted_zone_ids
}

output "service_network_arn" {
  description = "-> provider/consumer: service_network_arn."
  value       = module.service_network.service_network_arn
}

output "hub_vpc_id" {
  description = "The hub VPC."
  value       = module.hub.vpc_id
}

output "nat_gateway_ids" {
  description = "The hub's NAT gateways, one per AZ."
  value       = module.hub.nat_gateway_ids
}
