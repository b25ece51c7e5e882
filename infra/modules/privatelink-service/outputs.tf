output "endpoint_service_name" {
  description = "com.amazonaws.vpce.<region>.vpce-svc-...: what consumers put in their interface endpoint."
  value       = aws_vpc_endpoint_service.this.service_name
}

output "endpoint_service_id" {
  description = "The endpoint service's id."
  value       = aws_vpc_endpoint_service.this.id
}

output "target_group_arn" {
  description = "The NLB target group (ip, 15000) the ECS service registers its sidecars in."
  value       = aws_lb_target_group.sidecar.arn
}

output "listener_port" {
  description = "The port consumers connect to."
  value       = var.listener_port
}
