using System.Text.Json.Nodes;
using ContinualMoE.Backbones.Language;
using ContinualMoE.Checkpoints;
using ContinualMoE.Tests.Checkpoints;
using static TorchSharp.torch;

namespace ContinualMoE.Tests.Backbones.Language;

/// <summary>Loading Hugging Face model folders: naming variants, the memory guard and one-line errors naming the file.</summary>
public class LanguageModelFolderTests
{
    private static TempDirectory CopyOf(string model)
    {
        var temp = new TempDirectory();
        foreach (var file in Directory.GetFiles(LmFixtures.Folder(model)))
            File.Copy(file, temp.File(Path.GetFileName(file)));
        return temp;
    }

    private static void EditConfig(TempDirectory folder, Action<JsonObject> edit)
    {
        var config = JsonNode.Parse(File.ReadAllText(folder.File("config.json")))!.AsObject();
        edit(config);
        File.WriteAllText(folder.File("config.json"), config.ToJsonString());
    }

    private static ContinualMoEException LoadFails(TempDirectory folder, LanguageModelLoadOptions? options = null)
    {
        var error = Assert.Throws<ContinualMoEException>(() => LanguageModelFolder.Load(folder.Path, options));
        Assert.DoesNotContain('\n', error.Message);
        return error;
    }

    [Fact]
    public void OpenAiGpt2NamesWithoutPrefixAndMaskBuffersLoadToTheSameLogits()
    {
        using var folder = new TempDirectory();
        File.Copy(Path.Combine(LmFixtures.Folder("gpt2_tiny"), "config.json"), folder.File("config.json"));
        var checkpoint = SafeTensorsCheckpoint.Open(LmFixtures.Folder("gpt2_tiny"));
        var tensors = new Dictionary<string, Tensor>();
        foreach (var file in checkpoint.Files)
            foreach (var (name, tensor) in SafeTensorsFile.Read(file))
                tensors[name["transformer.".Length..]] = tensor;
        tensors["h.0.attn.bias"] = ones(1, 1, 32, 32).tril();                       // the causal-mask buffer old files carry
        SafeTensorsFile.Write(folder.File("model.safetensors"), tensors);

        var loaded = LanguageModelFolder.Load(folder.Path);
        Assert.Empty(loaded.Report.Unexpected);
        Assert.Contains(loaded.Report.Messages, m => m.Contains("ignored 1 tensors"));
        var expected = LmFixtures.Expected();
        using var noGrad = no_grad();
        using var output = loaded.Model.Forward(expected["gpt2.input_ids"]);
        Assert.True(LmFixtures.MaxDifference(expected["gpt2.logits"], output.Logits!) < 1e-4);
    }

    [Fact]
    public void Float16WeightsAreConvertedExactlyWhileStreaming()
    {
        using var folder = CopyOf("llama_tiny");
        var original = SafeTensorsFile.Read(folder.File("model.safetensors"));
        SafeTensorsFile.Write(folder.File("model.safetensors"), original.ToDictionary(p => p.Key, p => p.Value.to(ScalarType.Float16)));
        var loaded = LanguageModelFolder.Load(folder.Path);
        Assert.Contains("Float16 x", loaded.Description);
        var parameters = loaded.Model.state_dict();
        foreach (var (name, tensor) in original)
        {
            Assert.Equal(ScalarType.Float32, parameters[name].dtype);
            Assert.True(parameters[name].eq(tensor.to(ScalarType.Float16).to(ScalarType.Float32)).all().item<bool>(), name);
        }
    }

    [Fact]
    public void AMissingShardIsNamed()
    {
        using var folder = CopyOf("gpt2_tiny");
        File.Delete(folder.File("model-00002-of-00002.safetensors"));
        var error = LoadFails(folder);
        Assert.Contains("model-00002-of-00002.safetensors", error.Message);
        Assert.Contains("missing", error.Message);
    }

    [Fact]
    public void AnIndexThatPlacesATensorInTheWrongShardIsNamed()
    {
        using var folder = CopyOf("gpt2_tiny");
        var index = JsonNode.Parse(File.ReadAllText(folder.File(SafeTensorsCheckpoint.IndexFileName)))!;
        var map = index["weight_map"]!.AsObject();
        var first = map.First(p => p.Value!.GetValue<string>().StartsWith("model-00001")).Key;
        map[first] = "model-00002-of-00002.safetensors";
        File.WriteAllText(folder.File(SafeTensorsCheckpoint.IndexFileName), index.ToJsonString());
        var error = LoadFails(folder);
        Assert.Contains("model-00002-of-00002.safetensors", error.Message);
        Assert.Contains(first, error.Message);
    }

    [Theory]
    [InlineData("hidden_size", 48, "says vocabulary 64 and width 48")]
    [InlineData("num_hidden_layers", 3, "says 3 blocks but the weights have 2")]
    [InlineData("intermediate_size", 80, "contradicts the weights")]
    [InlineData("num_key_value_heads", 4, "contradicts the weights")]
    public void AConfigThatContradictsTheWeightsIsNamed(string key, int value, string expected)
    {
        using var folder = CopyOf("llama_tiny");
        EditConfig(folder, c => c[key] = value);
        var error = LoadFails(folder);
        Assert.StartsWith(folder.File("config.json"), error.Message);
        Assert.Contains(expected, error.Message);
    }

    [Theory]
    [InlineData("model_type", "bert", "model_type 'bert' is not supported")]
    [InlineData("hidden_act", "relu", "activation 'relu' is not supported")]
    [InlineData("num_attention_heads", 3, "not a multiple of 2 key/value heads")]
    public void UnsupportedConfigsAreRefusedBeforeLoading(string key, object value, string expected)
    {
        using var folder = CopyOf("llama_tiny");
        EditConfig(folder, c => c[key] = JsonValue.Create(value));
        var error = LoadFails(folder);
        Assert.StartsWith(folder.File("config.json"), error.Message);
        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public void UnsupportedRopeScalingIsNamed()
    {
        using var folder = CopyOf("llama_tiny");
        EditConfig(folder, c => c["rope_scaling"] = new JsonObject { ["rope_type"] = "yarn", ["factor"] = 4.0 });
        Assert.Contains("rope_scaling type 'yarn' is not supported", LoadFails(folder).Message);
    }

    [Fact]
    public void MissingTensorsAndMissingFilesAreNamed()
    {
        using var folder = CopyOf("llama_tiny");
        var tensors = SafeTensorsFile.Read(folder.File("model.safetensors"));
        tensors.Remove("model.layers.1.mlp.down_proj.weight");
        SafeTensorsFile.Write(folder.File("model.safetensors"), tensors);
        var missing = LoadFails(folder);
        Assert.Contains("model.layers.1.mlp.down_proj.weight", missing.Message);

        File.Delete(folder.File("model.safetensors"));
        File.WriteAllText(folder.File("pytorch_model.bin"), "");
        var noWeights = LoadFails(folder);
        Assert.Contains("no model.safetensors", noWeights.Message);
        Assert.Contains(".bin", noWeights.Message);

        File.Delete(folder.File("config.json"));
        Assert.Contains("config.json", LoadFails(folder).Message);
    }

    [Fact]
    public void AModelTooLargeForMemoryIsRefusedWithTheEstimate()
    {
        using var folder = CopyOf("llama_tiny");
        var error = LoadFails(folder, new LanguageModelLoadOptions { AvailableMemoryBytes = 100L << 20 });
        Assert.Contains("model needs about", error.Message);
        Assert.Contains("100.0 MiB is available", error.Message);
        Assert.Contains("try bfloat16", error.Message);

        // The estimate comes from the headers: the weights' share halves in bfloat16.
        var checkpoint = SafeTensorsCheckpoint.Open(folder.Path);
        Assert.Equal(checkpoint.BytesAs(ScalarType.Float32), 2 * checkpoint.BytesAs(ScalarType.BFloat16));
        var fileSize = new FileInfo(folder.File("model.safetensors")).Length;
        Assert.InRange(checkpoint.BytesAs(ScalarType.Float32), fileSize - 4096, fileSize);
    }
}
