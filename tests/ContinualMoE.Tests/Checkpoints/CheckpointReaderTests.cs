using System.IO.Compression;
using ContinualMoE.Checkpoints;
using static TorchSharp.torch;

namespace ContinualMoE.Tests.Checkpoints;

public class CheckpointReaderTests
{
    private const int D = TinyVit.Dim;

    private static Dictionary<string, Tensor> Reference(TinyVit model) =>
        model.state_dict().ToDictionary(p => p.Key, p => p.Value.detach().clone());

    private static void AssertSameTensors(IReadOnlyDictionary<string, Tensor> expected, IReadOnlyDictionary<string, Tensor> actual)
    {
        Assert.Equal(expected.Keys.OrderBy(k => k), actual.Keys.OrderBy(k => k));
        foreach (var (name, e) in expected)
        {
            Assert.True(e.shape.SequenceEqual(actual[name].shape), $"{name}: shape [{string.Join(",", actual[name].shape)}]");
            Assert.True(e.equal(actual[name]).all().item<bool>(), $"{name}: values differ");
        }
    }

    [Theory]
    [InlineData("vit.", true)]   // ViTForImageClassification
    [InlineData("", false)]      // ViTModel saved alone, no classifier
    public void HuggingFaceNamesMapToTimmAndQkvIsFused(string prefix, bool withClassifier)
    {
        using var dir = new TempDirectory();
        var model = new TinyVit();
        var timm = Reference(model);
        var hf = new Dictionary<string, Tensor>
        {
            [prefix + "embeddings.cls_token"] = timm["cls_token"],
            [prefix + "embeddings.position_embeddings"] = timm["pos_embed"],
            [prefix + "embeddings.patch_embeddings.projection.weight"] = timm["patch_embed.proj.weight"],
            [prefix + "embeddings.patch_embeddings.projection.bias"] = timm["patch_embed.proj.bias"],
            [prefix + "layernorm.weight"] = timm["norm.weight"],
            [prefix + "layernorm.bias"] = timm["norm.bias"],
            [prefix + "pooler.dense.weight"] = randn(D, D), // no timm counterpart
        };
        if (withClassifier)
        {
            hf["classifier.weight"] = timm["head.weight"];
            hf["classifier.bias"] = timm["head.bias"];
        }
        for (var i = 0; i < TinyVit.Depth; i++)
        {
            var l = $"{prefix}encoder.layer.{i}.";
            var b = $"blocks.{i}.";
            hf[l + "layernorm_before.weight"] = timm[b + "norm1.weight"];
            hf[l + "layernorm_before.bias"] = timm[b + "norm1.bias"];
            var names = new[] { "query", "key", "value" };
            for (var j = 0; j < 3; j++)
            {
                hf[l + $"attention.attention.{names[j]}.weight"] = timm[b + "attn.qkv.weight"][TensorIndex.Slice(j * D, (j + 1) * D)].clone();
                hf[l + $"attention.attention.{names[j]}.bias"] = timm[b + "attn.qkv.bias"][TensorIndex.Slice(j * D, (j + 1) * D)].clone();
            }
            hf[l + "attention.output.dense.weight"] = timm[b + "attn.proj.weight"];
            hf[l + "attention.output.dense.bias"] = timm[b + "attn.proj.bias"];
            hf[l + "layernorm_after.weight"] = timm[b + "norm2.weight"];
            hf[l + "layernorm_after.bias"] = timm[b + "norm2.bias"];
            hf[l + "intermediate.dense.weight"] = timm[b + "mlp.fc1.weight"];
            hf[l + "intermediate.dense.bias"] = timm[b + "mlp.fc1.bias"];
            hf[l + "output.dense.weight"] = timm[b + "mlp.fc2.weight"];
            hf[l + "output.dense.bias"] = timm[b + "mlp.fc2.bias"];
        }
        var path = dir.File("hf.safetensors");
        SafeTensorsFile.Write(path, hf);

        var (tensors, description) = CheckpointReader.ReadTimmStateDict(path);

        Assert.Contains("Hugging Face", description);
        Assert.Contains("2 blocks", description);
        // q rows first, then k, then v: check block 1's value rows against the value tensor directly.
        Assert.True(tensors["blocks.1.attn.qkv.weight"][TensorIndex.Slice(2 * D, 3 * D)]
            .equal(hf[$"{prefix}encoder.layer.1.attention.attention.value.weight"]).all().item<bool>());
        var expected = new Dictionary<string, Tensor>(timm) { [prefix + "pooler.dense.weight"] = hf[prefix + "pooler.dense.weight"] };
        if (!withClassifier) { expected.Remove("head.weight"); expected.Remove("head.bias"); }
        AssertSameTensors(expected, tensors);
    }

    /// <summary>The inverse of the reader's JAX conversion, written independently: timm layout to Flax layout.</summary>
    private static List<(string Key, byte[] Npy)> ExportAsJax(Dictionary<string, Tensor> timm)
    {
        var hd = D / TinyVit.Heads;
        var arrays = new List<(string, Tensor)>
        {
            ("cls", timm["cls_token"]),
            ("Transformer/posembed_input/pos_embedding", timm["pos_embed"]),
            ("embedding/kernel", timm["patch_embed.proj.weight"].permute(2, 3, 1, 0)), // OIHW -> HWIO
            ("embedding/bias", timm["patch_embed.proj.bias"]),
            ("Transformer/encoder_norm/scale", timm["norm.weight"]),
            ("Transformer/encoder_norm/bias", timm["norm.bias"]),
            ("head/kernel", timm["head.weight"].t()),
            ("head/bias", timm["head.bias"]),
            ("pre_logits/kernel", randn(D, D)),
            ("pre_logits/bias", randn(D)),
        };
        for (var i = 0; i < TinyVit.Depth; i++)
        {
            var e = $"Transformer/encoderblock_{i}/";
            var b = $"blocks.{i}.";
            arrays.Add((e + "LayerNorm_0/scale", timm[b + "norm1.weight"]));
            arrays.Add((e + "LayerNorm_0/bias", timm[b + "norm1.bias"]));
            arrays.Add((e + "LayerNorm_2/scale", timm[b + "norm2.weight"]));
            arrays.Add((e + "LayerNorm_2/bias", timm[b + "norm2.bias"]));
            var names = new[] { "query", "key", "value" };
            for (var j = 0; j < 3; j++)
            {
                var w = timm[b + "attn.qkv.weight"][TensorIndex.Slice(j * D, (j + 1) * D)]; // [out, in]
                var bias = timm[b + "attn.qkv.bias"][TensorIndex.Slice(j * D, (j + 1) * D)];
                arrays.Add((e + $"MultiHeadDotProductAttention_1/{names[j]}/kernel", w.t().reshape(D, TinyVit.Heads, hd)));
                arrays.Add((e + $"MultiHeadDotProductAttention_1/{names[j]}/bias", bias.reshape(TinyVit.Heads, hd)));
            }
            arrays.Add((e + "MultiHeadDotProductAttention_1/out/kernel", timm[b + "attn.proj.weight"].t().reshape(TinyVit.Heads, hd, D)));
            arrays.Add((e + "MultiHeadDotProductAttention_1/out/bias", timm[b + "attn.proj.bias"]));
            arrays.Add((e + "MlpBlock_3/Dense_0/kernel", timm[b + "mlp.fc1.weight"].t()));
            arrays.Add((e + "MlpBlock_3/Dense_0/bias", timm[b + "mlp.fc1.bias"]));
            arrays.Add((e + "MlpBlock_3/Dense_1/kernel", timm[b + "mlp.fc2.weight"].t()));
            arrays.Add((e + "MlpBlock_3/Dense_1/bias", timm[b + "mlp.fc2.bias"]));
        }
        return arrays.Select(a => (a.Item1, NpzTestFiles.Npy("<f4", a.Item2.shape, a.Item2.contiguous().bytes.ToArray()))).ToList();
    }

    [Fact]
    public void JaxNpzMapsBackToTheOriginalTimmTensors()
    {
        using var dir = new TempDirectory();
        var model = new TinyVit();
        var timm = Reference(model);
        var path = dir.File("ViT-tiny.npz");
        NpzTestFiles.WriteNpz(path, ExportAsJax(timm), compressed: true);

        var (tensors, description) = CheckpointReader.ReadTimmStateDict(path);

        Assert.Contains("JAX", description);
        Assert.Contains($"{TinyVit.Heads} heads", description);
        Assert.Contains("pre_logits/kernel", description);
        AssertSameTensors(timm, tensors);

        // And the result loads into a fresh model completely.
        var fresh = new TinyVit();
        var report = StateDictLoader.Load(fresh, tensors);
        Assert.Empty(report.Missing);
        Assert.Empty(report.Unexpected);
        Assert.False(report.SkippedHead);
        AssertSameTensors(timm, fresh.state_dict());
    }

    [Fact]
    public void TimmCheckpointWithWrapperPrefixLoadsAsIs()
    {
        using var dir = new TempDirectory();
        var timm = Reference(new TinyVit());
        var path = dir.File("ddp.safetensors");
        SafeTensorsFile.Write(path, timm.ToDictionary(p => "module." + p.Key, p => p.Value));

        var (tensors, description) = CheckpointReader.ReadTimmStateDict(path);

        Assert.Contains("timm", description);
        Assert.Contains("module.", description);
        AssertSameTensors(timm, tensors);
    }

    [Fact]
    public void UnknownLayoutListsSomeKeys()
    {
        using var dir = new TempDirectory();
        var path = dir.File("resnet.safetensors");
        SafeTensorsFile.Write(path, new Dictionary<string, Tensor> { ["conv1.weight"] = zeros(2, 2), ["fc.bias"] = zeros(2) });

        var error = Assert.Throws<ContinualMoEException>(() => CheckpointReader.ReadTimmStateDict(path));

        Assert.StartsWith(path + ":", error.Message);
        Assert.Contains("conv1.weight", error.Message);
        Assert.Contains("fc.bias", error.Message);
    }

    [Fact]
    public void MissingFileAndUnsupportedContainersAreReported()
    {
        using var dir = new TempDirectory();
        var missing = dir.File("nope.safetensors");
        Assert.Equal($"{missing}: file not found", Assert.Throws<ContinualMoEException>(() => CheckpointReader.ReadTimmStateDict(missing)).Message);

        var pickle = dir.File("model.pth");
        using (var zip = ZipFile.Open(pickle, ZipArchiveMode.Create)) zip.CreateEntry("archive/data.pkl");
        Assert.Contains("PyTorch pickle", Assert.Throws<ContinualMoEException>(() => CheckpointReader.ReadTimmStateDict(pickle)).Message);

        var text = dir.File("notes.bin");
        File.WriteAllText(text, "hello world, not a checkpoint");
        Assert.StartsWith(text + ":", Assert.Throws<ContinualMoEException>(() => CheckpointReader.ReadTimmStateDict(text)).Message);
    }
}
