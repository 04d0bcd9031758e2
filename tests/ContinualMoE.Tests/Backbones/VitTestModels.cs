using ContinualMoE.Backbones;

namespace ContinualMoE.Tests.Backbones;

/// <summary>Tiny ViT geometries for tests. <see cref="Parity"/> matches tools/make_vit_parity_fixture.py.</summary>
public static class VitTestModels
{
    public static readonly VitConfig Parity = new("parity_test", ImageSize: 32, PatchSize: 8, EmbedDim: 32, Depth: 2, Heads: 2, ClassCount: 10);
    public static readonly VitConfig Tiny = new("tiny_test", ImageSize: 16, PatchSize: 4, EmbedDim: 24, Depth: 3, Heads: 3, ClassCount: 5);
}
