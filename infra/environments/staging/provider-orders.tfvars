# Outputs of the networking root (`terraform output`), filled in after it is applied.
transit_gateway_id             = "tgw-0223456789abcdef0"
transit_gateway_route_table_id = "tgw-rtb-0223456789abcdef0"
service_network_arn            = "arn:aws:vpc-lattice:us-east-1:120000000001:servicenetwork/sn-0223456789abcdef0"
shared_endpoint_zone_ids = {
  "ecr.api"      = "Z02000000000000000001"
  "ecr.dkr"      = "Z02000000000000000002"
  logs           = "Z02000000000000000003"
  sts            = "Z02000000000000000004"
  secretsmanager = "Z02000000000000000005"
}

# Outputs of the shared-services root.
issuing_ca_arn   = "arn:aws:acm-pca:us-east-1:120000000003:certificate-authority/02234567-89ab-cdef-0123-456789abcdef"
trust_bundle_pem = <<-EOT
  -----BEGIN CERTIFICATE-----
  (shared-services output trust_bundle_pem)
  -----END CERTIFICATE-----
EOT
outrigger_image  = "120000000003.dkr.ecr.us-east-1.amazonaws.com/outrigger:0.1.0"
app_image        = "120000000003.dkr.ecr.us-east-1.amazonaws.com/orders:0.1.0"

account_id      = "220000000001"
service_name    = "orders"
vpc_cidr_block  = "10.21.0.0/16"
internal_domain = "staging.outrigger.internal"

consumer_account_ids = ["320000000001"]

# Second apply, once the consumer has created its endpoint (consumer output privatelink_endpoint_ids).
accepted_endpoint_ids = {
  checkout = "vpce-0223456789abcdef1"
}
