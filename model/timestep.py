"""Wan's sinusoidal timestep embedding, shared by the DiT's time embedding and the hard-sync gates."""
import torch


def sinusoid_embedding(dim: int, timestep: torch.Tensor) -> torch.Tensor:
    """[cos, sin] halves, frequencies 10000^(-i/half); float64 math and result, as the reference."""
    half = dim // 2
    pos = timestep.to(torch.float64)
    freqs = torch.pow(10000.0, -torch.arange(half, dtype=torch.float64, device=pos.device).div(half))
    args = torch.outer(pos, freqs)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)
