output "repository_urls" {
  description = "Repository URLs keyed by name (<account>.dkr.ecr.<region>.amazonaws.com/<name>)."
  value       = { for n, r in aws_ecr_repository.this : n => r.repository_url }
}

output "repository_arns" {
  description = "Repository ARNs keyed by name."
  value       = { for n, r in aws_ecr_repository.this : n => r.arn }
}
