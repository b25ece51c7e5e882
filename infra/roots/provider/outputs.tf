# Inputs of the consumer roots: see infra/README.md, "What each root needs".

output "endpoint_service_name" {
  description = "-> consumer: privatelink_upstreams[<service>].endpoint_service_name."
  value       = module.privatelink.endpoint_service_name
}

output "lattice_service" {
  description = "-> consumer: lattice_upstreams[<service>]."
  value = {
    custom_domain_name = module.lattice.custom_domain_name
    dns_name           = module.lattice.service_dns_name
    service_arn        = module.lattice.service_arn
  }
}

output "serverless_api" {
  description = "-> consumer: serverless_upstream (null without the serverless variant)."
  value = var.serverless == null ? null : {
    invoke_host   = module.serverless["api"].invoke_host
    stage_path    = module.serverless["api"].stage_path
    execution_arn = module.serverless["api"].execution_arn
  }
}

output "ecs_service" {
  description = "The ECS service running app + outrigger."
  value       = module.service.service_name
}

output "outrigger_config_parameter" {
  description = "SSM parameter with the rendered sidecar config."
  value       = module.service.config_parameter_name
}
