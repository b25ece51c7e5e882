# Outputs of the networking root (`terraform output`), filled in after it is applied.
transit_gateway_id             = "tgw-0123456789abcdef0"
transit_gateway_route_table_id = "tgw-rtb-0123456789abcdef0"
service_network_arn            = "arn:aws:vpc-lattice:us-east-1:110000000001:servicenetwork/sn-0123456789abcdef0"
shared_endpoint_zone_ids = {
  "ecr.api"      = "Z01000000000000000001"
  "ecr.dkr"      = "Z01000000000000000002"
  logs           = "Z01000000000000000003"
  sts            = "Z01000000000000000004"
  secretsmanager = "Z01000000000000000005"
}

# Outputs of the shared-services root.
issuing_ca_arn   = "arn:aws:acm-pca:us-east-1:110000000003:certificate-authority/01234567-89ab-cdef-0123-456789abcdef"
trust_bundle_pem = <<-EOT
  -----BEGIN CERTIFICATE-----
  (shared-services output trust_bundle_pem)
  -----END CERTIFICATE-----
EOT
outrigger_image  = "110000000003.dkr.ecr.us-east-1.amazonaws.com/outrigger:0.1.0"
app_image        = "110000000003.dkr.ecr.us-east-1.amazonaws.com/checkout:0.1.0"

account_id      = "310000000001"
service_name    = "checkout"
vpc_cidr_block  = "10.12.0.0/16"
internal_domain = "dev.outrigger.internal"

# Outputs of the provider root for orders.
privatelink_upstreams = {
  orders = {
    endpoint_service_name = "com.amazonaws.vpce.us-east-1.vpce-svc-0123456789abcdef0"
  }
}

lattice_upstreams = {
  inventory = {
    custom_domain_name = "inventory.lattice.dev.outrigger.internal"
    dns_name           = "outrigger-dev-inventory-0123456789abcdef.7d67968.vpc-lattice-svcs.us-east-1.on.aws"
    service_arn        = "arn:aws:vpc-lattice:us-east-1:210000000001:service/svc-0123456789abcdef0"
  }
}

serverless_upstream = {
  name          = "orders-api"
  invoke_host   = "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com"
  stage_path    = "/live"
  execution_arn = "arn:aws:execute-api:us-east-1:210000000001:a1b2c3d4e5"
}
