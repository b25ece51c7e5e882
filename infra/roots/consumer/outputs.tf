output "privatelink_endpoint_ids" {
  description = "-> each provider root: accepted_endpoint_ids[<this consumer>] = <id of its service>."
  value       = module.connectivity.privatelink_endpoint_ids
}

output "execute_api_endpoint_id" {
  description = "-> provider root with the serverless variant: serverless.allowed_vpce_ids."
  value       = module.connectivity.execute_api_endpoint_id
}

output "outrigger_config_parameter" {
  description = "SSM parameter with the rendered sidecar config."
  value       = module.service.config_parameter_name
}

output "ecs_service" {
  description = "The ECS service running app + outrigger."
  value       = module.service.service_name
}
