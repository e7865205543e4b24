"""Image encoders, genetics encoders and projection heads (no torchvision)."""
from medcl.models.genetics import GeneticsEncoder, GeneticsEncoderConfig, build_genetics_encoder
from medcl.models.heads import ProjectionHead, ProjectionHeadConfig, build_projection_head
from medcl.models.encoders import (Encoder, ImageEncoderConfig, build_image_encoder, encoder_names,
                                   register_encoder)
from medcl.models.resnet import ResNet

__all__ = ["Encoder", "ImageEncoderConfig", "ResNet", "build_image_encoder", "encoder_names", "register_encoder",
           "GeneticsEncoder", "GeneticsEncoderConfig", "build_genetics_encoder",
           "ProjectionHead", "ProjectionHeadConfig", "build_projection_head"]
