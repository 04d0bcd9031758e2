using System.Text.Json;
using ContinualMoE.Backbones;
using ContinualMoE.Checkpoints;
using ContinualMoE.Tests.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace ContinualMoE.Tests.Backbones;

/// <summary>
/// Issue 9 §4: a ViT that is not in the registry loads from its weights, with the geometry the tensors determine and
/// the rest given on --backbone or read from a transformers config.json; contradictions are one-line errors.
/// </summary>
public class BackboneGeometryTests
{
    /// <summary>A "user's own" ViT: 24 px images, patch 4 (grid 6), width 48, depth 2, 4 heads, MLP width 100 (ratio 2.083..).</summary>
    private static readonly VitConfig Custom = new("custom", ImageSize: 24, PatchSize: 4, EmbedDim: 48, Depth: 2, Heads: 4,
        ClassCount: 7, MlpWidth: 100);

    private static VisionTransformer RandomModel(VitConfig config)
    {
        torch.manual_seed(5);
        var model = new VisionTransformer(config, seed: 3);
        using (no_grad())
            foreach (var (_, p) in model.named_parameters()) p.copy_(randn(p.shape) * 0.2);
        return model;
    }

    private static Tensor Features(VisionTransformer model, Tensor images)
    {
        using var output = model.ForwardFeatures(images);
        return output.Cls.clone();
    }

    private static void AssertSameFunction(VisionTransformer expected, VisionTransformer actual, double tolerance = 1e-5)
    {
        torch.manual_seed(9);
        using var images = randn(3, expected.Config.InChannels, expected.Config.ImageSize, expected.Config.ImageSize);
        using var a = Features(expected, images);
        using var b = Features(actual, images);
        Assert.True(a.allclose(b, rtol: 0, atol: tolerance), $"max difference {(a - b).abs().max().item<float>()}");
    }

    [Fact]
    public void UnregisteredTimmVitLoadsWithGeometryInferredFromItsTensors()
    {
        using var dir = new TempDirectory();
        using var original = RandomModel(Custom);
        var path = dir.File("my_vit.safetensors");
        StateDictLoader.Save(original, path);

        var (loaded, report) = BackboneFactory.Create("vit:heads=4", path, seed: 1);
        using (loaded)
        {
            var c = loaded.Config;
            Assert.Equal((24, 4, 48, 2, 4, 100, 7, 1e-6), (c.ImageSize, c.PatchSize, c.EmbedDim, c.Depth, c.Heads, c.MlpHidden, c.ClassCount, c.LayerNormEps));
            Assert.False(report!.ResizedPositionEmbedding);
            AssertSameFunction(original, loaded);
            // The resolved name is itself a complete --backbone geometry.
            Assert.Equal(c with { Name = "", ClassCount = 1000 }, VitRegistry.Get(c.Name) with { Name = "" });
        }

        // Another image size: everything else from the weights, position embedding resampled to the 8x8 grid.
        var (larger, resized) = BackboneFactory.Create("vit:heads=4,image=32", path, seed: 1);
        using (larger)
        {
            Assert.Equal(8, larger.Config.GridSize);
            Assert.True(resized!.ResizedPositionEmbedding);
        }
    }

    [Fact]
    public void MissingHeadsAndContradictedSettingsAreOneLineErrorsNamingTheSetting()
    {
        using var dir = new TempDirectory();
        using var original = RandomModel(Custom);
        var path = dir.File("my_vit.safetensors");
        StateDictLoader.Save(original, path);

        string Error(string backbone) =>
            Assert.Throws<ContinualMoEException>(() => BackboneFactory.Create(backbone, path, seed: 1)).Message;

        var heads = Error("vit");
        Assert.StartsWith(path + ": ", heads);
        Assert.Contains("attention heads", heads);
        Assert.Contains("--backbone vit:heads=N", heads);

        var width = Error("vit:heads=4,width=64");
        Assert.Contains("width 48", width);
        Assert.Contains("pass width=48", width);
        Assert.Contains("pass depth=2", Error("vit:heads=4,depth=3"));
        Assert.Contains("pass patch=4", Error("vit:heads=4,patch=8"));
        Assert.Contains("mlp-width=100", Error("vit:heads=4,mlp-ratio=4"));

        var registry = Error("vit_nano_patch4_32");
        Assert.Contains("vit_nano_patch4_32", registry);
        Assert.Contains("--backbone vit", registry);

        Assert.Contains("unknown setting 'layers'", Assert.Throws<ContinualMoEException>(() => BackboneSpec.Parse("vit:layers=3")).Message);
        Assert.Contains("heads=x", Assert.Throws<ContinualMoEException>(() => BackboneSpec.Parse("vit:heads=x")).Message);
        var incomplete = Assert.Throws<ContinualMoEException>(() => BackboneFactory.Create("vit:width=32,depth=2", null, 1)).Message;
        Assert.Contains("missing: image, patch, heads", incomplete);
        foreach (var message in new[] { heads, width, registry, incomplete }) Assert.DoesNotContain('\n', message);
    }

    [Fact]
    public void ExplicitGeometryWithoutWeightsAndRegistryNamesStillWork()
    {
        var (model, report) = BackboneFactory.Create("vit:image=32,patch=8,width=40,depth=1,heads=5,mlp-ratio=2,eps=1e-5", null, seed: 2);
        using (model)
        {
            Assert.Null(report);
            Assert.Equal((32, 8, 40, 1, 5, 80, 1e-5), (model.Config.ImageSize, model.Config.PatchSize, model.Config.EmbedDim,
                model.Config.Depth, model.Config.Heads, model.Config.MlpHidden, model.Config.LayerNormEps));
        }
        Assert.Equal(VitRegistry.Get("vit_nano_patch4_32"), BackboneSpec.Parse("vit_nano_patch4_32.some_tag").WithoutWeights());
        Assert.Equal(1e-12, BackboneSpec.Parse("vit_nano_patch4_32:eps=1e-12").WithoutWeights().LayerNormEps);
    }

    /// <summary>timm names to transformers ViTModel names (q, k, v split from qkv), written for this test.</summary>
    private static Dictionary<string, Tensor> ToTransformersNames(VisionTransformer model)
    {
        var timm = model.state_dict();
        var d = model.Config.EmbedDim;
        var hf = new Dictionary<string, Tensor>
        {
            ["embeddings.cls_token"] = timm["cls_token"],
            ["embeddings.position_embeddings"] = timm["pos_embed"],
            ["embeddings.patch_embeddings.projection.weight"] = timm["patch_embed.proj.weight"],
            ["embeddings.patch_embeddings.projection.bias"] = timm["patch_embed.proj.bias"],
            ["layernorm.weight"] = timm["norm.weight"],
            ["layernorm.bias"] = timm["norm.bias"],
        };
        for (var i = 0; i < model.Config.Depth; i++)
        {
            var (b, l) = ($"blocks.{i}.", $"encoder.layer.{i}.");
            var names = new[] { "query", "key", "value" };
            for (var j = 0; j < 3; j++)
                foreach (var kind in new[] { "weight", "bias" })
                    hf[$"{l}attention.attention.{names[j]}.{kind}"] = timm[$"{b}attn.qkv.{kind}"].narrow(0, j * d, d).contiguous();
            foreach (var (timmName, hfName) in new[] { ("attn.proj", "attention.output.dense"), ("norm1", "layernorm_before"),
                         ("norm2", "layernorm_after"), ("mlp.fc1", "intermediate.dense"), ("mlp.fc2", "output.dense") })
                foreach (var kind in new[] { "weight", "bias" })
                    hf[$"{l}{hfName}.{kind}"] = timm[$"{b}{timmName}.{kind}"];
        }
        return hf;
    }

    private static void WriteTransformersConfig(string folder, int heads, int hidden = 48, double eps = 1e-12) =>
        File.WriteAllText(Path.Combine(folder, "config.json"), JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["architectures"] = new[] { "ViTModel" }, ["model_type"] = "vit", ["hidden_size"] = hidden, ["num_hidden_layers"] = 2,
            ["num_attention_heads"] = heads, ["intermediate_size"] = 100, ["hidden_act"] = "gelu", ["layer_norm_eps"] = eps,
            ["image_size"] = 24, ["patch_size"] = 4, ["num_channels"] = 3, ["qkv_bias"] = true,
        }));

    [Fact]
    public void TransformersFolderGivesHeadsAndEpsFromConfigJson()
    {
        using var dir = new TempDirectory();
        using var original = RandomModel(Custom with { LayerNormEps = 1e-12 });
        SafeTensorsFile.Write(dir.File("model.safetensors"), ToTransformersNames(original));
        WriteTransformersConfig(dir.Path, heads: 4);

        var (loaded, _) = BackboneFactory.Create("vit", dir.Path, seed: 1);
        using (loaded)
        {
            Assert.Equal((4, 1e-12, 24, 100), (loaded.Config.Heads, loaded.Config.LayerNormEps, loaded.Config.ImageSize, loaded.Config.MlpHidden));
            AssertSameFunction(original, loaded);
        }

        var contradicted = Assert.Throws<ContinualMoEException>(() => BackboneFactory.Create("vit:heads=6", dir.Path, 1)).Message;
        Assert.StartsWith(dir.File("config.json") + ": ", contradicted);
        Assert.Contains("pass heads=4", contradicted);

        WriteTransformersConfig(dir.Path, heads: 4, hidden: 64);
        var wrongWidth = Assert.Throws<ContinualMoEException>(() => BackboneFactory.Create("vit", dir.Path, 1)).Message;
        Assert.StartsWith(dir.File("config.json") + ": hidden_size is 64 but the weights have width 48", wrongWidth);

        File.Delete(dir.File("model.safetensors"));
        Assert.Contains("no model.safetensors", Assert.Throws<ContinualMoEException>(() => BackboneFactory.Create("vit", dir.Path, 1)).Message);
    }
}
