output "service_name" {
  description = "The ECS service's name."
  value       = aws_ecs_service.this.name
}

output "task_definition_arn" {
  description = "The task definition (app + outrigger)."
  value       = aws_ecs_task_definition.this.arn
}

output "security_group_id" {
  description = "The tasks' security group."
  value       = aws_security_group.task.id
}

output "task_role_arn" {
  description = "The task role (the sidecar's AWS identity: SigV4 signing, certificate issuance)."
  value       = aws_iam_role.task.arn
}

output "config_parameter_name" {
  description = "SSM parameter holding the rendered outrigger.yaml."
  value       = aws_ssm_parameter.config.name
}

output "log_group_name" {
  description = "CloudWatch log group of all three containers."
  value       = aws_cloudwatch_log_group.task.name
}
