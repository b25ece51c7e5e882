# Interface endpoints shared by every VPC behind the transit gateway (the "centralized endpoints"
# pattern). The endpoints have private DNS turned off; instead each service gets a private hosted
# zone named like the service (e.g. logs.us-east-1.amazonaws.com) with an alias to the endpoint.
# The zones are associated with the hub VPC here; the spoke-network module authorizes (as the
# networking account) and makes (as the member account) each spoke VPC's association.

data "aws_region" "current" {}

locals {
  region = data.aws_region.current.region
  # Most services answer on <service>.<region>.amazonaws.com; ECR's two do not. The docker
  # endpoint serves the registry host names <account>.dkr.ecr.<region>.amazonaws.com, hence the
  # wildcard record in every zone.
  dns_overrides = {
    "ecr.api" = "api.ecr.${local.region}.amazonaws.com"
    "ecr.dkr" = "dkr.ecr.${local.region}.amazonaws.com"
  }
  zone_names = { for s in var.services : s => lookup(local.dns_overrides, s, "${s}.${local.region}.amazonaws.com") }
}

resource "aws_security_group" "endpoints" {
  name        = "${var.name}-endpoints"
  description = "HTTPS to the shared interface endpoints from the hub and the spokes"
  vpc_id      = var.vpc_id

  tags = merge(var.tags, { Name = "${var.name}-endpoints" })
}

resource "aws_vpc_security_group_ingress_rule" "https" {
  for_each = toset(var.allowed_cidr_blocks)

  security_group_id = aws_security_group.endpoints.id
  description       = "HTTPS from ${each.value}"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = each.value

  tags = var.tags
}

resource "aws_vpc_endpoint" "interface" {
  for_each = toset(var.services)

  vpc_id              = var.vpc_id
  vpc_endpoint_type   = "Interface"
  service_name        = "com.amazonaws.${local.region}.${each.value}"
  subnet_ids          = var.subnet_ids
  security_group_ids  = [aws_security_group.endpoints.id]
  private_dns_enabled = false

  tags = merge(var.tags, { Name = "${var.name}-${each.value}" })
}

resource "aws_route53_zone" "service" {
  for_each = local.zone_names

  name    = each.value
  comment = "Shared ${each.key} interface endpoint"

  vpc {
    vpc_id = var.vpc_id
  }

  # Spoke associations are made from the member accounts; don't undo them here.
  lifecycle {
    ignore_changes = [vpc]
  }

  tags = var.tags
}

resource "aws_route53_record" "service" {
  for_each = local.zone_names

  zone_id = aws_route53_zone.service[each.key].zone_id
  name    = each.value
  type    = "A"

  alias {
    name                   = aws_vpc_endpoint.interface[each.key].dns_entry[0].dns_name
    zone_id                = aws_vpc_endpoint.interface[each.key].dns_entry[0].hosted_zone_id
    evaluate_target_health = true
  }
}

resource "aws_route53_record" "service_wildcard" {
  for_each = local.zone_names

  zone_id = aws_route53_zone.service[each.key].zone_id
  name    = "*.${each.value}"
  type    = "A"

  alias {
    name                   = aws_vpc_endpoint.interface[each.key].dns_entry[0].dns_name
    zone_id                = aws_vpc_endpoint.interface[each.key].dns_entry[0].hosted_zone_id
    evaluate_target_health = true
  }
}
