# The provider side of VPC Lattice: a service with a custom domain whose certificate is issued by
# the shared Private CA, an HTTPS listener, an IP target group on the outrigger sidecars' inbound
# port (15000, TLS again to the sidecar) health-checked on /ready, an IAM auth policy that admits
# only the consumer accounts (callers sign with SigV4), and the association with the shared
# service network. ECS registers the tasks in the target group (sidecar-service module).

resource "aws_acm_certificate" "this" {
  domain_name               = var.custom_domain_name
  certificate_authority_arn = var.issuing_ca_arn
  key_algorithm             = "EC_prime256v1"

  lifecycle {
    create_before_destroy = true
  }

  tags = merge(var.tags, { Name = var.custom_domain_name })
}

resource "aws_vpclattice_service" "this" {
  name               = var.name
  auth_type          = "AWS_IAM"
  custom_domain_name = var.custom_domain_name
  certificate_arn    = aws_acm_certificate.this.arn

  tags = var.tags
}

resource "aws_vpclattice_target_group" "sidecar" {
  name = "${var.name}-sidecar"
  type = "IP"

  config {
    vpc_identifier   = var.vpc_id
    ip_address_type  = "IPV4"
    port             = 15000
    protocol         = "HTTPS"
    protocol_version = "HTTP1"

    health_check {
      enabled                       = true
      protocol                      = "HTTP"
      protocol_version              = "HTTP1"
      port                          = 9901
      path                          = "/ready"
      health_check_interval_seconds = 10
      health_check_timeout_seconds  = 5
      healthy_threshold_count       = 2
      unhealthy_threshold_count     = 2

      matcher {
        value = "200"
      }
    }
  }

  tags = var.tags
}

resource "aws_vpclattice_listener" "https" {
  name               = "https"
  service_identifier = aws_vpclattice_service.this.id
  protocol           = "HTTPS"
  port               = 443

  default_action {
    forward {
      target_groups {
        target_group_identifier = aws_vpclattice_target_group.sidecar.id
        weight                  = 100
      }
    }
  }

  tags = var.tags
}

resource "aws_vpclattice_auth_policy" "this" {
  resource_identifier = aws_vpclattice_service.this.arn
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { AWS = [for a in var.consumer_account_ids : "arn:aws:iam::${a}:root"] }
      Action    = "vpc-lattice-svcs:Invoke"
      Resource  = "${aws_vpclattice_service.this.arn}/*"
      Condition = {
        StringEquals = { "aws:PrincipalOrgID" = var.organization_id }
      }
    }]
  })
}

resource "aws_vpclattice_service_network_service_association" "this" {
  service_identifier         = aws_vpclattice_service.this.id
  service_network_identifier = var.service_network_arn

  tags = var.tags
}
