using ContinualMoE.Backbones;
using TorchSharp;
using static TorchSharp.torch;

namespace ContinualMoE.Tests.Backbones;

public class VisionTransformerTests
{
    [Fact]
    public void ParameterNamesAndShapesAreTimms()
    {
        var config = VitTestModels.Tiny;
        var vit = new VisionTransformer(config);
        var shapes = vit.named_parameters().ToDictionary(p => p.name, p => p.parameter.shape);
        long d = config.EmbedDim;
        var expected = new Dictionary<string, long[]>
        {
            ["cls_token"] = [1, 1, d], ["pos_embed"] = [1, 1 + config.PatchCount, d],
            ["patch_embed.proj.weight"] = [d, 3, config.PatchSize, config.PatchSize], ["patch_embed.proj.bias"] = [d],
            ["norm.weight"] = [d], ["norm.bias"] = [d], ["head.weight"] = [config.ClassCount, d], ["head.bias"] = [config.ClassCount],
        };
        for (var i = 0; i < config.Depth; i++)
        {
            foreach (var n in new[] { "norm1", "norm2" }) { expected[$"blocks.{i}.{n}.weight"] = [d]; expected[$"blocks.{i}.{n}.bias"] = [d]; }
            expected[$"blocks.{i}.attn.qkv.weight"] = [3 * d, d]; expected[$"blocks.{i}.attn.qkv.bias"] = [3 * d];
            expected[$"blocks.{i}.attn.proj.weight"] = [d, d]; expected[$"blocks.{i}.attn.proj.bias"] = [d];
            expected[$"blocks.{i}.mlp.fc1.weight"] = [4 * d, d]; expected[$"blocks.{i}.mlp.fc1.bias"] = [4 * d];
            expected[$"blocks.{i}.mlp.fc2.weight"] = [d, 4 * d]; expected[$"blocks.{i}.mlp.fc2.bias"] = [d];
        }
        Assert.Equal(expected.Keys.Order(), shapes.Keys.Order());
        foreach (var (name, shape) in expected) Assert.Equal(shape, shapes[name]);
        Assert.All(vit.parameters(), p => Assert.False(p.requires_grad));
    }

    [Fact]
    public void CapturesRequestedBlocksAndReturnsClsOfFinalTokens()
    {
        var vit = new VisionTransformer(VitTestModels.Tiny, seed: 1);
        using var noGrad = no_grad();
        using var output = vit.ForwardFeatures(randn(2, 3, 16, 16), new VitForwardOptions { CaptureBlocks = new HashSet<int> { 0, 2 } });
        Assert.Equal([0, 2], output.BlockTokens.Keys.Order());
        Assert.Equal(new long[] { 2, 17, 24 }, output.BlockTokens[0].shape);
        Assert.True(output.Cls.allclose(output.Tokens[.., 0], rtol: 0, atol: 0));
    }

    [Fact]
    public void PromptTokensAreInsertedAfterTheClassToken()
    {
        var vit = new VisionTransformer(VitTestModels.Tiny, seed: 1);
        using var noGrad = no_grad();
        using var output = vit.ForwardFeatures(randn(2, 3, 16, 16), new VitForwardOptions { PromptTokens = randn(1, 5, 24) });
        Assert.Equal(new long[] { 2, 1 + 5 + 16, 24 }, output.Tokens.shape);
    }

    [Fact]
    public void PositionEmbeddingResizeKeepsClassTokenAndIsIdentityOnSameGrid()
    {
        var pos = randn(1, 1 + 16, 8);
        Assert.True(VisionTransformer.ResizePositionEmbedding(pos, 4).allclose(pos, atol: 1e-6));
        var resized = VisionTransformer.ResizePositionEmbedding(pos, 7);
        Assert.Equal(new long[] { 1, 50, 8 }, resized.shape);
        Assert.True(resized[.., ..1].allclose(pos[.., ..1], rtol: 0, atol: 0));
        // A constant grid stays constant under bicubic resampling.
        var constant = ones(1, 17, 8);
        Assert.True(VisionTransformer.ResizePositionEmbedding(constant, 6).allclose(ones(1, 37, 8), atol: 1e-5));
    }

    [Fact]
    public void WrongImageShapeAndUnknownConfigGiveClearErrors()
    {
        var vit = new VisionTransformer(VitTestModels.Tiny);
        var shapeError = Assert.Throws<ContinualMoEException>(() => vit.ForwardFeatures(randn(2, 3, 32, 32)));
        Assert.Contains("expects images [B, 3, 16, 16]", shapeError.Message);
        var nameError = Assert.Throws<ContinualMoEException>(() => VitRegistry.Get("vit_huge_patch99"));
        Assert.Contains("vit_base_patch16_224", nameError.Message);
        Assert.Equal(768, VitRegistry.Get("vit_base_patch16_224.augreg2_in21k_ft_in1k").EmbedDim);
    }
}
