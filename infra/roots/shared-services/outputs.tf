output "repository_urls" {
  description = "-> provider/consumer: outrigger_image and app_image are <url>:<tag>."
  value       = module.ecr.repository_urls
}

output "issuing_ca_arn" {
  description = "-> provider/consumer: issuing_ca_arn."
  value       = module.private_ca.subordinate_ca_arn
}

output "trust_bundle_pem" {
  description = "-> provider/consumer: trust_bundle_pem (the root CA certificate)."
  value       = module.private_ca.trust_bundle_pem
}

output "root_ca_arn" {
  description = "The root CA (signs only the subordinate)."
  value       = module.private_ca.root_ca_arn
}
