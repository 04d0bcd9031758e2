using System.Security.Cryptography;
using ContinualMoE.Backbones.Language;
using ContinualMoE.Checkpoints;
using ContinualMoE.Tests.Checkpoints;
using static TorchSharp.torch;

namespace ContinualMoE.Tests.Backbones.Language;

/// <summary>Loading safetensors through a copy-on-write memory map gives the tensors streaming gives, and never changes the file.</summary>
public class MemoryMappedLoadingTests
{
    [Theory]
    [InlineData("gpt2_tiny", ScalarType.Float32)]      // two F32 shards
    [InlineData("llama_tiny", ScalarType.Float32)]     // one F32 file, untied head
    [InlineData("qwen2_tiny", ScalarType.Float32)]     // converted while streaming when the stored dtype differs
    [InlineData("qwen2_tiny", ScalarType.BFloat16)]
    public void MappedParametersEqualStreamedOnesBitForBit(string folder, ScalarType dtype)
    {
        using var streamed = LanguageModelFolder.Load(LmFixtures.Folder(folder), new LanguageModelLoadOptions { DType = dtype }).Model;
        using var mapped = LanguageModelFolder.Load(LmFixtures.Folder(folder), new LanguageModelLoadOptions { DType = dtype, MemoryMap = true }).Model;
        var expected = streamed.state_dict();
        foreach (var (name, tensor) in mapped.state_dict())
        {
            Assert.Equal(expected[name].dtype, tensor.dtype);
            Assert.True(expected[name].eq(tensor).all().item<bool>(), $"{folder}: {name} differs");
        }
        var ids = LmFixtures.Expected()[$"{folder.Split('_')[0]}.input_ids"];
        using var noGrad = no_grad();
        using var a = streamed.Forward(ids);
        using var b = mapped.Forward(ids);
        Assert.Equal(0f, LmFixtures.MaxDifference(a.Logits!, b.Logits!));
    }

    [Fact]
    public void WritingAMappedParameterLeavesTheFileAndLaterLoadsUnchanged()
    {
        var file = Path.Combine(LmFixtures.Folder("llama_tiny"), "model.safetensors");
        var before = SHA256.HashData(File.ReadAllBytes(file));
        using (var mapped = LanguageModelFolder.Load(LmFixtures.Folder("llama_tiny"), new LanguageModelLoadOptions { MemoryMap = true }).Model)
        using (no_grad())
        {
            var weight = mapped.state_dict()["model.embed_tokens.weight"];
            weight.add_(1.0);
            Assert.True(weight.eq(SafeTensorsFile.Read(file)["model.embed_tokens.weight"].add(1.0)).all().item<bool>());
        }
        Assert.Equal(before, SHA256.HashData(File.ReadAllBytes(file)));
        using var again = LanguageModelFolder.Load(LmFixtures.Folder("llama_tiny"), new LanguageModelLoadOptions { MemoryMap = true }).Model;
        Assert.True(again.state_dict()["model.embed_tokens.weight"].eq(SafeTensorsFile.Read(file)["model.embed_tokens.weight"]).all().item<bool>());
    }

    [Fact]
    public void MisalignedTensorsAreStreamedInsteadOfMapped()
    {
        using var folder = new TempDirectory();
        var path = folder.File("odd.safetensors");
        // Sorted by name: three F16 values (6 bytes) put the F32 tensor after them at an offset that is not a multiple of 4.
        var original = new Dictionary<string, Tensor>
        {
            ["a"] = tensor(new float[] { 1.5f, -2f, 3.25f }).to(ScalarType.Float16),
            ["b"] = arange(10, dtype: ScalarType.Float32).mul(0.5),
        };
        SafeTensorsFile.Write(path, original);
        var destinations = new Dictionary<string, Tensor> { ["a"] = zeros(3, dtype: ScalarType.Float16), ["b"] = zeros(10) };
        SafeTensorsFile.ReadInto(path, entry => destinations[entry.Name], memoryMap: true);
        foreach (var (name, expected) in original) Assert.True(expected.eq(destinations[name]).all().item<bool>(), name);
    }
}
