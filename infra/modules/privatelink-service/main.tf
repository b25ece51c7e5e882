# The provider side of PrivateLink: an internal NLB passing TLS through to the outrigger sidecars'
# inbound listener (port 15000, mTLS terminated by outrigger), health-checked on the sidecar's
# /ready, published as a VPC endpoint service that only the named consumer accounts may connect
# to, each connection accepted explicitly.

locals {
  short_name = substr(var.name, 0, 26)
}

resource "aws_security_group" "nlb" {
  name        = "${var.name}-nlb"
  description = "Internal NLB in front of the outrigger sidecars"
  vpc_id      = var.vpc_id

  tags = merge(var.tags, { Name = "${var.name}-nlb" })
}

resource "aws_vpc_security_group_ingress_rule" "nlb" {
  security_group_id = aws_security_group.nlb.id
  description       = "Clients inside the provider VPC"
  ip_protocol       = "tcp"
  from_port         = var.listener_port
  to_port           = var.listener_port
  cidr_ipv4         = var.vpc_cidr_block

  tags = var.tags
}

resource "aws_vpc_security_group_egress_rule" "nlb" {
  for_each = toset(["15000", "9901"])

  security_group_id = aws_security_group.nlb.id
  description       = "To the sidecars' port ${each.value}"
  ip_protocol       = "tcp"
  from_port         = tonumber(each.value)
  to_port           = tonumber(each.value)
  cidr_ipv4         = var.vpc_cidr_block

  tags = var.tags
}

resource "aws_lb" "this" {
  name                             = "${local.short_name}-nlb"
  load_balancer_type               = "network"
  internal                         = true
  subnets                          = var.subnet_ids
  security_groups                  = [aws_security_group.nlb.id]
  enable_cross_zone_load_balancing = var.cross_zone
  enable_deletion_protection       = false

  # PrivateLink traffic is gated by the endpoint service (named principals, explicit acceptance);
  # the security group then guards traffic from inside the provider VPC only.
  enforce_security_group_inbound_rules_on_private_link_traffic = "off"

  tags = merge(var.tags, { Name = "${var.name}-nlb" })
}

resource "aws_lb_target_group" "sidecar" {
  name                 = "${local.short_name}-sc"
  vpc_id               = var.vpc_id
  target_type          = "ip"
  protocol             = "TCP"
  port                 = 15000
  deregistration_delay = 45

  # /ready answers 503 as soon as the sidecar starts draining, so the NLB stops sending new
  # connections before the task stops.
  health_check {
    protocol            = "HTTP"
    port                = "9901"
    path                = "/ready"
    matcher             = "200"
    interval            = 10
    healthy_threshold   = 2
    unhealthy_threshold = 2
  }

  tags = var.tags
}

resource "aws_lb_listener" "tls_passthrough" {
  load_balancer_arn = aws_lb.this.arn
  protocol          = "TCP"
  port              = var.listener_port

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.sidecar.arn
  }

  tags = var.tags
}

resource "aws_vpc_endpoint_service" "this" {
  acceptance_required        = true
  allowed_principals         = var.allowed_principals
  network_load_balancer_arns = [aws_lb.this.arn]
  supported_ip_address_types = ["ipv4"]

  tags = merge(var.tags, { Name = var.name })
}

resource "aws_vpc_endpoint_connection_accepter" "consumer" {
  for_each = var.accepted_endpoint_ids

  vpc_endpoint_service_id = aws_vpc_endpoint_service.this.id
  vpc_endpoint_id         = each.value
}
