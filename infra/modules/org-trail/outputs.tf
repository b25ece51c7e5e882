output "trail_arn" {
  description = "The organization trail's ARN."
  value       = aws_cloudtrail.org.arn
}

output "bucket_name" {
  description = "The log archive bucket (CloudTrail under cloudtrail/, AWS Config under config/)."
  value       = aws_s3_bucket.logs.id
}

output "bucket_arn" {
  description = "The log archive bucket's ARN."
  value       = aws_s3_bucket.logs.arn
}

output "kms_key_arn" {
  description = "The KMS key that encrypts the log archive."
  value       = aws_kms_key.logs.arn
}
