output "trail_arn" {
  description = "The organization trail."
  value       = module.org_trail.trail_arn
}

output "log_archive_bucket" {
  description = "The log archive bucket."
  value       = module.org_trail.bucket_name
}

output "log_archive_kms_key_arn" {
  description = "The log archive's KMS key (AWS Config recorders of other accounts deliver with it)."
  value       = module.org_trail.kms_key_arn
}
