output "az_count" {
  description = "Availability zones each VPC spans (2 or 3)."
  value       = local.selected.az_count
}

output "task_cpu" {
  description = "Fargate task CPU units (a valid Fargate size): the app's plus the sidecar's."
  value       = local.selected.task_cpu
}

output "task_memory" {
  description = "Fargate task memory in MiB: the app's plus the sidecar's."
  value       = local.selected.task_memory
}

output "app_cpu" {
  description = "CPU units reserved for the app container."
  value       = local.selected.task_cpu - local.sidecar.cpu
}

output "app_memory" {
  description = "Memory (MiB) reserved for the app container."
  value       = local.selected.task_memory - local.sidecar.memory
}

output "sidecar_cpu" {
  description = "CPU units reserved for the outrigger container."
  value       = local.sidecar.cpu
}

output "sidecar_memory" {
  description = "Memory (MiB) reserved for the outrigger container."
  value       = local.sidecar.memory
}

output "desired_count" {
  description = "ECS service desired task count."
  value       = local.selected.desired_count
}

output "log_retention_days" {
  description = "CloudWatch Logs retention for container and flow logs."
  value       = local.selected.log_retention_days
}

output "nlb_cross_zone" {
  description = "Whether internal NLBs balance across zones."
  value       = local.selected.nlb_cross_zone
}
