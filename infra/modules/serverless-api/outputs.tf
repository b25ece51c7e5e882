output "api_id" {
  description = "The private REST API's id."
  value       = aws_api_gateway_rest_api.this.id
}

output "invoke_host" {
  description = "Host the consumer's sidecar calls through its execute-api endpoint (private DNS on): <api-id>.execute-api.<region>.amazonaws.com."
  value       = "${aws_api_gateway_rest_api.this.id}.execute-api.${data.aws_region.current.region}.amazonaws.com"
}

output "stage_path" {
  description = "Path prefix of the deployed stage."
  value       = "/${aws_api_gateway_stage.live.stage_name}"
}

output "execution_arn" {
  description = "execute-api ARN prefix; consumers' task roles are granted execute-api:Invoke on <this>/*."
  value       = aws_api_gateway_rest_api.this.execution_arn
}

output "table_name" {
  description = "The DynamoDB table behind the function."
  value       = aws_dynamodb_table.items.name
}

output "account_id" {
  description = "The provider account that owns the API."
  value       = data.aws_caller_identity.current.account_id
}
