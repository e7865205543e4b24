"""Image encoders, genetics encoders and projection heads (no torchvision)."""
from medcl.models.genetics import GeneticsEncoder, GeneticsEncoderConfig, build_genetics_encoder
from medcl.models.heads import ProjectionHead, ProjectionHeadConfig, build_projection_head
from medcl.models.resnet import ImageEncoderConfig, ResNet, build_image_encoder

__all__ = ["ResNet", "ImageEncoderConfig", "build_image_encoder",
           "GeneticsEncoder", "GeneticsEncoderConfig", "build_genetics_encoder",
           "ProjectionHead", "ProjectionHeadConfig", "build_projection_head"]
