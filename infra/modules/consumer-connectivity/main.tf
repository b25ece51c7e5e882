# The consumer side of both paths, in the consumer account:
#   PrivateLink: one interface endpoint per provider endpoint service (the provider accepts it),
#                and <service>.pl.<zone> in a private hosted zone pointing at it;
#   Lattice:     the VPC associated with the shared service network behind a security group, and
#                the services' custom domains pointing at their Lattice DNS names;
#   execute-api: optionally, the endpoint through which the serverless variant's private API is
#                reached.
# The outrigger sidecar's clusters are rendered from this module's outputs by the consumer root.

data "aws_region" "current" {}

resource "aws_security_group" "endpoints" {
  name        = "${var.name}-endpoints"
  description = "Interface endpoints to provider services, reachable from this VPC only"
  vpc_id      = var.vpc_id

  tags = merge(var.tags, { Name = "${var.name}-endpoints" })
}

resource "aws_vpc_security_group_ingress_rule" "endpoints" {
  for_each = toset(concat([for s in values(var.privatelink_services) : tostring(s.port)], var.enable_execute_api_endpoint ? ["443"] : []))

  security_group_id = aws_security_group.endpoints.id
  description       = "From the consumer VPC to endpoint port ${each.value}"
  ip_protocol       = "tcp"
  from_port         = tonumber(each.value)
  to_port           = tonumber(each.value)
  cidr_ipv4         = var.vpc_cidr_block

  tags = var.tags
}

resource "aws_vpc_endpoint" "privatelink" {
  for_each = var.privatelink_services

  vpc_id              = var.vpc_id
  vpc_endpoint_type   = "Interface"
  service_name        = each.value.endpoint_service_name
  subnet_ids          = var.subnet_ids
  security_group_ids  = [aws_security_group.endpoints.id]
  private_dns_enabled = false

  tags = merge(var.tags, { Name = "${var.name}-${each.key}" })
}

resource "aws_vpc_endpoint" "execute_api" {
  count = var.enable_execute_api_endpoint ? 1 : 0

  vpc_id              = var.vpc_id
  vpc_endpoint_type   = "Interface"
  service_name        = "com.amazonaws.${data.aws_region.current.region}.execute-api"
  subnet_ids          = var.subnet_ids
  security_group_ids  = [aws_security_group.endpoints.id]
  private_dns_enabled = true

  tags = merge(var.tags, { Name = "${var.name}-execute-api" })
}

resource "aws_route53_zone" "friendly" {
  name    = var.private_zone_name
  comment = "Friendly names of the provider services ${var.name} calls"

  vpc {
    vpc_id = var.vpc_id
  }

  tags = var.tags
}

resource "aws_route53_record" "privatelink" {
  for_each = var.privatelink_services

  zone_id = aws_route53_zone.friendly.zone_id
  name    = "${each.key}.pl.${var.private_zone_name}"
  type    = "A"

  alias {
    name                   = aws_vpc_endpoint.privatelink[each.key].dns_entry[0].dns_name
    zone_id                = aws_vpc_endpoint.privatelink[each.key].dns_entry[0].hosted_zone_id
    evaluate_target_health = true
  }
}

resource "aws_security_group" "lattice" {
  count = var.service_network_arn != null ? 1 : 0

  name        = "${var.name}-lattice"
  description = "Traffic from this VPC into the Lattice service network"
  vpc_id      = var.vpc_id

  tags = merge(var.tags, { Name = "${var.name}-lattice" })
}

resource "aws_vpc_security_group_ingress_rule" "lattice" {
  count = var.service_network_arn != null ? 1 : 0

  security_group_id = aws_security_group.lattice[0].id
  description       = "HTTPS from the consumer VPC to Lattice services"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = var.vpc_cidr_block

  tags = var.tags
}

resource "aws_vpclattice_service_network_vpc_association" "this" {
  count = var.service_network_arn != null ? 1 : 0

  vpc_identifier             = var.vpc_id
  service_network_identifier = var.service_network_arn
  security_group_ids         = [aws_security_group.lattice[0].id]

  tags = var.tags
}

resource "aws_route53_record" "lattice" {
  for_each = var.lattice_services

  zone_id = aws_route53_zone.friendly.zone_id
  name    = each.value.custom_domain_name
  type    = "CNAME"
  ttl     = 300
  records = [each.value.dns_name]
}
