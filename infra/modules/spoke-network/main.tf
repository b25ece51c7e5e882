# A member account's VPC, joined to the hub:
#   - the VPC itself (private and isolated subnets, no NAT: 0.0.0.0/0 goes to the transit gateway,
#     and out through the hub's NAT gateways),
#   - its transit gateway attachment, associated with and propagated into the shared route table
#     (done as the networking account, which owns the transit gateway: provider aws.network),
#   - the shared interface endpoints' private hosted zones, associated with this VPC (authorized
#     as the networking account, associated as this account).

data "aws_region" "current" {}

module "vpc" {
  source = "../vpc"
  providers = {
    aws = aws
  }

  name                    = var.name
  cidr_block              = var.cidr_block
  availability_zones      = var.availability_zones
  public_subnets          = false
  flow_log_retention_days = var.flow_log_retention_days
  tags                    = var.tags
}

resource "aws_ec2_transit_gateway_vpc_attachment" "this" {
  transit_gateway_id = var.transit_gateway_id
  vpc_id             = module.vpc.vpc_id
  subnet_ids         = module.vpc.private_subnet_ids

  tags = merge(var.tags, { Name = var.name })
}

resource "aws_ec2_transit_gateway_route_table_association" "this" {
  provider = aws.network

  transit_gateway_attachment_id  = aws_ec2_transit_gateway_vpc_attachment.this.id
  transit_gateway_route_table_id = var.transit_gateway_route_table_id
}

resource "aws_ec2_transit_gateway_route_table_propagation" "this" {
  provider = aws.network

  transit_gateway_attachment_id  = aws_ec2_transit_gateway_vpc_attachment.this.id
  transit_gateway_route_table_id = var.transit_gateway_route_table_id
}

resource "aws_route" "default_via_tgw" {
  for_each = toset(var.availability_zones)

  route_table_id         = module.vpc.private_route_table_ids[each.key]
  destination_cidr_block = "0.0.0.0/0"
  transit_gateway_id     = var.transit_gateway_id

  depends_on = [aws_ec2_transit_gateway_vpc_attachment.this]
}

resource "aws_route53_vpc_association_authorization" "shared_endpoints" {
  provider = aws.network
  for_each = var.shared_endpoint_zone_ids

  zone_id    = each.value
  vpc_id     = module.vpc.vpc_id
  vpc_region = data.aws_region.current.region
}

resource "aws_route53_zone_association" "shared_endpoints" {
  for_each = var.shared_endpoint_zone_ids

  zone_id    = aws_route53_vpc_association_authorization.shared_endpoints[each.key].zone_id
  vpc_id     = aws_route53_vpc_association_authorization.shared_endpoints[each.key].vpc_id
  vpc_region = data.aws_region.current.region
}
