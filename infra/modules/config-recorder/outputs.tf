output "recorder_name" {
  description = "The AWS Config recorder's name."
  value       = aws_config_configuration_recorder.this.name
}

output "role_arn" {
  description = "The role AWS Config records with."
  value       = aws_iam_role.config.arn
}
