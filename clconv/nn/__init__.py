"""Layers with torch.nn names and arguments; each has forward and backward, and its
parameters and gradients live on the device."""
from .layers import (AdaptiveAvgPool1d, AdaptiveAvgPool2d, AvgPool1d, AvgPool2d, AvgPool3d,
                     BatchNorm2d, Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d,
                     ConvTranspose3d, Dropout, Flatten, LeakyReLU, Linear, MaxPool1d, MaxPool2d,
                     MaxPool3d, ReLU, Sigmoid, Tanh)
from .loss import CrossEntropyLoss
from .module import Module, Parameter, Sequential

__all__ = ["Module", "Parameter", "Sequential", "Conv2d", "ConvTranspose2d", "MaxPool2d",
           "AvgPool2d", "AdaptiveAvgPool2d", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Flatten",
           "Linear", "Dropout", "BatchNorm2d", "CrossEntropyLoss", "Conv1d", "ConvTranspose1d",
           "MaxPool1d", "AvgPool1d", "AdaptiveAvgPool1d", "Conv3d", "ConvTranspose3d",
           "MaxPool3d", "AvgPool3d"]
