namespace ContinualMoE.Backbones;

/// <summary>
/// Named ViT configurations, like timm's model registry. The ImageNet ones match timm exactly so that real
/// checkpoints load; the small-image ones (patch 4 on 32x32) exist for fast runs and tests on a CPU.
/// </summary>
public static class VitRegistry
{
    private static readonly Dictionary<string, VitConfig> Configs = new(StringComparer.OrdinalIgnoreCase)
    {
        ["vit_base_patch16_224"] = new("vit_base_patch16_224", 224, 16, 768, 12, 12),
        ["vit_small_patch16_224"] = new("vit_small_patch16_224", 224, 16, 384, 12, 6),
        ["vit_tiny_patch16_224"] = new("vit_tiny_patch16_224", 224, 16, 192, 12, 3),
        ["vit_large_patch16_224"] = new("vit_large_patch16_224", 224, 16, 1024, 24, 16),
        // Small-image variants for CPU runs: timm's tiny/small geometry on 32x32 inputs with 4x4 patches,
        // and two narrower ones sized for minutes-long experiments and second-long tests.
        ["vit_small_patch4_32"] = new("vit_small_patch4_32", 32, 4, 384, 12, 6),
        ["vit_tiny_patch4_32"] = new("vit_tiny_patch4_32", 32, 4, 192, 12, 3),
        ["vit_micro_patch4_32"] = new("vit_micro_patch4_32", 32, 4, 128, 6, 4),
        ["vit_nano_patch4_32"] = new("vit_nano_patch4_32", 32, 4, 64, 4, 4),
    };

    /// <summary>
    /// A registry name, or a complete explicit geometry (<see cref="BackboneSpec"/>: <c>vit:image=..,patch=..,width=..,
    /// depth=..,heads=..</c>). timm's pretrained tags (e.g. <c>.augreg2_in21k_ft_in1k</c>) name weights, not geometry,
    /// and are accepted.
    /// </summary>
    public static VitConfig Get(string name)
    {
        if (name.Contains(':') || name.Trim().Equals(BackboneSpec.GeometryPrefix, StringComparison.OrdinalIgnoreCase))
            return BackboneSpec.Parse(name).WithoutWeights();
        var architecture = name.Split('.')[0];
        if (Configs.TryGetValue(architecture, out var config)) return config;
        throw new ContinualMoEException(
            $"unknown backbone '{name}'; known: {string.Join(", ", Names)}, or a geometry such as {BackboneSpec.GeometryPrefix}:heads=6 (the rest from the weights)");
    }

    public static IReadOnlyList<string> Names => Configs.Keys.Order().ToList();
}
