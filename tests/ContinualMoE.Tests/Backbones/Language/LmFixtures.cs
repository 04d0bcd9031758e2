using TorchSharp;
using ContinualMoE.Backbones;
using ContinualMoE.Backbones.Language;
using ContinualMoE.Checkpoints;
using static TorchSharp.torch;

namespace ContinualMoE.Tests.Backbones.Language;

/// <summary>The tiny Hugging Face model folders and reference outputs of tools/make_lm_parity_fixture.py.</summary>
internal static class LmFixtures
{
    public static string Folder(string model) => Path.Combine(AppContext.BaseDirectory, "Fixtures", "lm", model);

    public static Dictionary<string, Tensor> Expected() =>
        SafeTensorsFile.Read(Path.Combine(AppContext.BaseDirectory, "Fixtures", "lm", "lm_parity_expected.safetensors"));

    public static DecoderLanguageModel Load(string model, ScalarType dtype = ScalarType.Float32) =>
        LanguageModelFolder.Load(Folder(model), new LanguageModelLoadOptions { DType = dtype }).Model;

    public static float MaxDifference(Tensor a, Tensor b) => (a - b).abs().max().item<float>();

    /// <summary>delta(x) = x A on the listed sites, as the reference adds it.</summary>
    public sealed class MatrixAdapters(Dictionary<LinearSite, Tensor> matrices) : ILinearAdapterProvider
    {
        public List<LinearSite> Asked { get; } = [];

        public Tensor? Delta(LinearSite site, Tensor input)
        {
            Asked.Add(site);
            return matrices.TryGetValue(site, out var a) ? torch.matmul(input, a) : null;
        }
    }
}
