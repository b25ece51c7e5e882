output "root_ca_arn" {
  description = "The root CA's ARN."
  value       = aws_acmpca_certificate_authority.root.arn
}

output "subordinate_ca_arn" {
  description = "The issuing (subordinate) CA's ARN, shared with the member accounts."
  value       = aws_acmpca_certificate_authority.subordinate.arn
}

output "trust_bundle_pem" {
  description = "PEM of the root CA certificate: the trust bundle of every outrigger sidecar."
  value       = aws_acmpca_certificate.root.certificate
}

output "subordinate_chain_pem" {
  description = "PEM of the subordinate CA certificate followed by the root's."
  value       = "${aws_acmpca_certificate.subordinate.certificate}\n${aws_acmpca_certificate.root.certificate}"
}

output "resource_share_arn" {
  description = "The RAM share carrying the subordinate CA."
  value       = aws_ram_resource_share.subordinate.arn
}
